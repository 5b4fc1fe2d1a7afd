"""Task data in, model inputs out: task definitions, loaders (GLUE, custom files, the hub, the synthetic task),
the encoders that turn text into ids, the batches students train on, and word vectors."""
