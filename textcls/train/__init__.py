"""The Trainer, its loss, interruptions and resume, the output folder, search and launches."""
