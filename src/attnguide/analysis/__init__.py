"""Seeing the attention: the diagnostics that describe how heads spread their attention
(``diagnostics``), their figures (``plots``) and the report of ``attnguide analyze`` (``report``)."""
