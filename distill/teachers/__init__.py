"""Getting a teacher: load it, or train it once and cache it."""

from distill.teachers.cache import TeacherCache, spec_key
from distill.teachers.source import PreparedTeacher, prepare_teacher

__all__ = ["PreparedTeacher", "TeacherCache", "prepare_teacher", "spec_key"]
