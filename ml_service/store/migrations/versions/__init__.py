"""One module per schema revision; append new ones, never edit those released."""
