// Filled in by the persistence core work.
