"""Seeing the attention: the diagnostics that describe how heads spread their attention
(``diagnostics``), their figures (``attention_plots``) and the report of ``attnguide analyze``
(``attention_report``)."""
