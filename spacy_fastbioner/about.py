__title__ = "spacy-fastbioner"
__version__ = "0.1.0"
