"""From FLAME vertex animation to shape-key weights an animator can edit (numpy only).

`basis` builds the project's ARKit-named shape-key basis on a FLAME template (from the articulatory rig and the
FLAME regions, computed on the user's own template: nothing derived from FLAME is shipped), `solver` turns a
(T, 5023, 3) clip into per-frame weights of that basis (bounded least squares with temporal smoothness and
sparsity), and `curves` thins weight curves into keyframes and applies animator controls to them.
"""
