"""Training that can stop and continue: a resumable `spacy train` loop and the
state it keeps between processes."""
