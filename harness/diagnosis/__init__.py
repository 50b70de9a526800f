"""diagnosis room: turn a failed worker into a cause and an exact remedy."""
