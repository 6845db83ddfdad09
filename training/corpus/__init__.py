"""Builder of a SYNTHETIC speech-mesh corpus: FLAME-topology animation driven by phoneme timings.

Speech (real recordings with forced-aligned phones, or espeak-ng with exact phoneme events) is turned
into a phone timeline, the timeline into articulatory control curves (visemes + coarticulation), and
the curves into vertex sequences through a rig built from the FLAME template and masks. Nothing here is
captured motion: every clip is synthetic animation, and the manifest says `"synthetic": true`.
"""
