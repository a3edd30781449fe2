"""What people use: the command line, the local web app, batches on Ray."""

# The web app's limits (`fbcnn serve` defaults; here so that the command line reads them
# without importing Gradio). Its image limit is below read_image's own
# (fbcnn.images.files.DEFAULT_MAX_MEGAPIXELS): a server holds the images of every visitor.
APP_MAX_MEGAPIXELS = 50.0
APP_MAX_UPLOAD_MB = 200.0
