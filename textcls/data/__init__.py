"""Loading, GLUE, labels, tokenizing and batches: the data from files to model inputs."""
