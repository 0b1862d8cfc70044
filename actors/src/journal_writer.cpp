// Filled in by the group-commit work.
