"""专题 (hot topics): opinions on the same matter in the same place, grouped and ranked."""
