"""The CRM handoff: ``lead.qualified``, the whole lead as sales needs it, once per handoff."""
