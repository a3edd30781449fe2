"""What people use: the command line, the local web app, batches on Ray."""
