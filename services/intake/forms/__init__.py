"""Lead posts from web forms and form backends: ``POST/GET/DELETE /v1/leads`` (``api``), bodies as
JSON, form fields or HubSpot's shape (``parsing``, ``submissions``), the reads of a lead
(``store``) and the routes' documentation (``docs``)."""
