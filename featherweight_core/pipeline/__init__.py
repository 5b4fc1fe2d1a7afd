"""The steps a single run goes through: preparing encoded splits with their soft targets, distilling a student and
saving its checkpoint, compressing a saved student."""
