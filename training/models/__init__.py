"""Torch networks: the speech-mesh representation (`speech_mesh`)."""
