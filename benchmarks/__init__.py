"""Quality benchmark of vqscore: degraded-speech sets, baselines and correlation reports (not part of the library)."""
