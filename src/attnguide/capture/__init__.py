"""Taking the guided heads' attention out of a model's forward pass: the two routes (``routes``), the
attention function registered with transformers (``attention_function``), the profile computed
beside PyTorch's SDPA without keeping n × n maps (``sdpa_profiles``, ``received_profiles``, over the
blocks of ``score_blocks``), and a training step's guiding part (``guided_forward``)."""
