"""Corpora and text: readers for training (IOB, PubTator, plain text), the
biomedical tokenizer, sentence splitting and a doc's text."""
