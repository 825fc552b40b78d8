"""Lessons: skills taught at a booked time (availability, slots, booking, the lessons list)."""
