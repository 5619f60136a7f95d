"""Checks a run makes on itself: the first batch's shapes and labels, the teacher/student pair, non-finite losses."""
