"""The command-line settings of the tiny generator training runs that the family tests (CodeTalker-style,
SelfTalk-style, compare) share: 4 steps, a log row every step, a checkpoint every 2."""

TINY = ["--preset", "tiny", "--set", "steps=4", "--set", "log_every=1", "--set", "checkpoint_every=2"]
