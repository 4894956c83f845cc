"""Training, evaluation and export of the FER2013 classifier: ``python -m train --help``."""
