"""The one exception the MoH XML mapping raises internally: it names the element, so that the adapter can
reject the episode (HOSO) it belongs to, alone, with the field an integrator has to fix."""

from __future__ import annotations


class HosoError(ValueError):
    """A problem that makes one HOSO unusable; ``field`` is ``XML1.NGAY_VAO``, ``HOSO[2].XML3.NOIDUNGFILE``..."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
