"""LeNet-5 regularization lab: models, data, training, checkpoints and a CLI for FashionMNIST.

This package never imports streamlit; the dashboard pages call into it.
"""

__version__ = "0.1.0"

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000  # FashionMNIST's two files
