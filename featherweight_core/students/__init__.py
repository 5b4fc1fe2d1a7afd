"""The students: the small models themselves, their sizes and metrics, and the distillation loop that trains them."""
