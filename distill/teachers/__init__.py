"""Getting a teacher: load it, or train it once and cache it."""

from distill.teachers.cache import TeacherCache, spec_key
from distill.teachers.output_cache import TeacherOutputCache
from distill.teachers.source import PreparedTeacher, prepare_teacher

__all__ = ["PreparedTeacher", "TeacherCache", "TeacherOutputCache", "prepare_teacher", "spec_key"]
