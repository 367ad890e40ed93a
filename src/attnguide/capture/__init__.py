"""Taking the guided heads' attention out of a model's forward pass: the two routes (``routes``) and
the attention kernels that compute profiles beside PyTorch's SDPA without keeping n × n maps
(``kernels``)."""
