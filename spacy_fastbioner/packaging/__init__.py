"""Model packages: `spacy package` wheels and their model cards."""
