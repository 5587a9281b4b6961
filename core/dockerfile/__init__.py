"""The Dockerfile front end: parsing (`parser`), the typed instructions it produces (`instructions`) and
docker's variable expansion (`expand`), which the executor applies instruction by instruction."""

from .expand import Expander, Expansion
from .parser import load_dockerfile, parse_dockerfile, parse_instruction

__all__ = ["Expander", "Expansion", "load_dockerfile", "parse_dockerfile", "parse_instruction"]
