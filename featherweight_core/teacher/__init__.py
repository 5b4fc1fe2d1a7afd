"""The teacher side: loading, fine-tuning and running transformer teachers, the soft targets and augmented data they
produce for students, and compressing the teachers themselves (BERT-of-Theseus, BERT-Vision, int8)."""
