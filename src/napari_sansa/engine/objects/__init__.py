"""Objects: a class mask split into one label per object (watershed or SAM2), and their table."""

OBJECT_METHODS = ("watershed", "sam")  # how a prediction becomes objects: Prediction.instances, --instances
