"""Getting a teacher: load it, or train it once and cache it; several teachers as one."""

from distill.teachers.cache import TeacherCache, spec_key
from distill.teachers.ensemble import TeacherEnsemble, combine_logits
from distill.teachers.output_cache import TeacherOutputCache
from distill.teachers.source import PreparedTeacher, prepare_teacher

__all__ = [
    "PreparedTeacher", "TeacherCache", "TeacherEnsemble", "TeacherOutputCache", "combine_logits", "prepare_teacher",
    "spec_key",
]
