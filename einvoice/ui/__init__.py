"""The accountants' server-rendered pages under ``/ui/`` (``pages.install`` mounts them)."""
