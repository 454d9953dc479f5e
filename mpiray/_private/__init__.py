"""Ray's `ray._private` names that programs use (internal_api.free, memory_summary)."""
