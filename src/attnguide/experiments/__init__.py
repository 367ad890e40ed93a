"""Experiments over many runs: the grid of ``attnguide compare`` (``grid``), running it resumably
(``runner``), statistics over seeds (``stats``), its results, report and plots (``results``,
``comparison_report``, ``comparison_plots``); the Optuna study of ``attnguide tune``
(``tuning_space``, ``tuning_storage``, ``tuning_trials``, ``tuning_confirmation``,
``tuning_report``); the offline demo (``offline_demo``); the forest report and study files
(``forest``, ``study``)."""
