"""The articulatory FLAME rig and what drives it (numpy only): phone timelines -> control curves -> vertices.

`timeline` reads `.phones.lab` files and holds the phone classes, `coarticulation` turns a timeline into
control curves, `flame_rig` turns control curves into FLAME vertex positions. The corpus builder animates
its SYNTHETIC clips with it; the real-speech checks (backend.metrics.phone_checks) drive it with a
recording's phone labels to get a pseudo ground truth for timing.
"""
