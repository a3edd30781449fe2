"""The FBCNN network, its checkpoints and graphs, and the runtimes that run them."""
