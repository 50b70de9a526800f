"""records room: the result schema and its files on disk."""
