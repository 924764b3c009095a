"""Run reports: a JSON journal, JUnit XML for CI, and the console table."""

from .console import verdict_table
from .journal import write_journal
from .junit import write_junit

__all__ = ["verdict_table", "write_journal", "write_junit"]
