"""hpcflow: metric flows with neural networks on Calabi-Yau hypersurfaces (arXiv:2310.19870).

Layers, bottom first, as README's "Layout" gives them: a module's imports at module level go down this order or
stay within its layer, never up (`parallel` and `progress` are in the base layer, below the geometry and the
clustering that use them; `cluster`, `kernels` and `metric` share a layer; `analysis` is below `report` and `submit`):

    errors, arguments, value_ranges, names, atomic, h5read, launcher_output, stop_signals, backend, allocator,
    provenance, resources, parallel, progress, jobs, nn.files, nn._torch -> geometry -> cluster, kernels, metric ->
    flow, flow_step, flow_inputs -> checkpoint -> experiments -> nn -> tune -> analysis -> report, submit, commands
    -> cli, program, __main__

The base layer also holds `nn`'s `__init__`, which imports `nn._torch` only. A few imports inside functions reach up
(README's "Layout" names them).
"""

__version__ = "0.1.0"
