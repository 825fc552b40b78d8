"""Reviews: both sides of a completed order review each other."""
