"""Experiments over many runs: the grid of ``attnguide compare`` (``grid``), running it resumably
(``runner``), statistics over seeds (``stats``), results, report and plots, and the offline demo."""
