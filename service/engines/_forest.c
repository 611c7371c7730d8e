/*
 * service.engines._forest: the tree engine's compiled walk (see service/engines/trees.py).
 *
 * One call walks every tree of a forest for every row and adds each tree's leaf values into
 * `out`, trees in estimator order, so each output element sees the same sequence of float64
 * additions as scikit-learn's `out += tree.predict_proba(X)` loop: the answers are identical.
 *
 * Nodes are 16 bytes (feature, float32 threshold, two children). scikit-learn compares a float32
 * input, promoted to double, with a float64 threshold; for a float32 x that is the same as
 * comparing x with the largest float32 not above the threshold, which trees.py stores here. A
 * leaf's threshold is +inf and both its children are itself. Inputs are finite float32 rows
 * (trees.py routes NaN and infinities elsewhere), so every comparison is an ordinary one.
 *
 * Rows are walked in blocks: for each tree, a block's rows descend together, which keeps that
 * tree's top nodes in cache and lets the CPU overlap the independent loads of different rows.
 * The GIL is released for the walk; the arrays are only read, except `out`, which the caller
 * owns for the duration of the call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

typedef struct {
    int32_t feature;
    float threshold;
    int32_t child[2];
} Node;

/* Rows descending one tree together. */
#define BLOCK_ROWS 16

static void
walk(const Node *nodes, const int32_t *roots, Py_ssize_t n_trees, const float *X,
     Py_ssize_t n_rows, Py_ssize_t n_features, const double *values, Py_ssize_t n_columns,
     int assign_first, double *out)
{
    int32_t at[BLOCK_ROWS];
    const float *row[BLOCK_ROWS];
    for (Py_ssize_t start = 0; start < n_rows; start += BLOCK_ROWS) {
        Py_ssize_t block = n_rows - start < BLOCK_ROWS ? n_rows - start : BLOCK_ROWS;
        double *sums = out + start * n_columns;
        for (Py_ssize_t r = 0; r < block; r++) {
            row[r] = X + (start + r) * n_features;
        }
        for (Py_ssize_t tree = 0; tree < n_trees; tree++) {
            for (Py_ssize_t r = 0; r < block; r++) {
                at[r] = roots[tree];
            }
            /* One level per pass for every row of the block: the rows' loads are independent,
             * so they overlap, and the step has no data-dependent branch. Leaves loop to
             * themselves, so a pass in which no row moved means all have arrived. */
            for (int moved = 1; moved;) {
                moved = 0;
                for (Py_ssize_t r = 0; r < block; r++) {
                    const Node *n = &nodes[at[r]];
                    int32_t next = n->child[row[r][n->feature] > n->threshold];
                    moved |= next != at[r];
                    at[r] = next;
                }
            }
            for (Py_ssize_t r = 0; r < block; r++) {
                const double *value = values + (Py_ssize_t)at[r] * n_columns;
                double *sum = sums + r * n_columns;
                if (assign_first && tree == 0) {
                    for (Py_ssize_t c = 0; c < n_columns; c++) {
                        sum[c] = value[c];
                    }
                } else {
                    for (Py_ssize_t c = 0; c < n_columns; c++) {
                        sum[c] += value[c];
                    }
                }
            }
        }
    }
}

static int
check(Py_buffer *buffer, Py_ssize_t itemsize, Py_ssize_t count, const char *name)
{
    if (buffer->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %zd", name, buffer->len,
                     itemsize * count);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(check_nodes_doc,
"check_nodes(nodes, roots, n_features)\n"
"--\n\n"
"Raise ValueError unless every walk of these nodes from these roots ends on a leaf after\n"
"reading only features below n_features: sum_leaves trusts nodes that passed this check.");

static PyObject *
check_nodes(PyObject *module, PyObject *args)
{
    Py_buffer nodes, roots;
    Py_ssize_t n_features;
    if (!PyArg_ParseTuple(args, "y*y*n", &nodes, &roots, &n_features)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n_nodes = nodes.len / (Py_ssize_t)sizeof(Node);
    Py_ssize_t n_trees = roots.len / (Py_ssize_t)sizeof(int32_t);
    if (check(&nodes, sizeof(Node), n_nodes, "nodes") ||
        check(&roots, sizeof(int32_t), n_trees, "roots")) {
        goto done;
    }
    const Node *node_array = (const Node *)nodes.buf;
    for (Py_ssize_t i = 0; i < n_nodes; i++) {
        const Node *n = &node_array[i];
        int leaf = n->child[0] == i && n->child[1] == i && n->threshold == INFINITY;
        /* Children after their parent (scikit-learn's depth-first order), so every walk ends
         * on a leaf, which no finite value leaves. */
        int split = n->child[0] > i && n->child[0] < n_nodes && n->child[1] > i &&
                    n->child[1] < n_nodes;
        if (n->feature < 0 || n->feature >= n_features || !(leaf || split)) {
            PyErr_Format(PyExc_ValueError, "node %zd is out of range", i);
            goto done;
        }
    }
    const int32_t *root_array = (const int32_t *)roots.buf;
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        if (root_array[t] < 0 || root_array[t] >= n_nodes) {
            PyErr_Format(PyExc_ValueError, "root %zd is out of range", t);
            goto done;
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&nodes);
    PyBuffer_Release(&roots);
    return result;
}

PyDoc_STRVAR(sum_leaves_doc,
"sum_leaves(nodes, roots, X, values, out, n_features, n_columns, assign_first)\n"
"--\n\n"
"Add every tree's leaf values for every row of X (finite float32, C order) into out\n"
"(float64, n_rows x n_columns, C order), trees in the order of roots; with assign_first the\n"
"first tree's values replace out's instead. nodes and roots must have passed check_nodes.");

static PyObject *
sum_leaves(PyObject *module, PyObject *args)
{
    Py_buffer nodes, roots, X, values, out;
    Py_ssize_t n_features, n_columns;
    int assign_first;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*nnp", &nodes, &roots, &X, &values, &out, &n_features,
                          &n_columns, &assign_first)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n_nodes = nodes.len / (Py_ssize_t)sizeof(Node);
    Py_ssize_t n_trees = roots.len / (Py_ssize_t)sizeof(int32_t);
    if (n_features <= 0 || n_columns <= 0) {
        PyErr_SetString(PyExc_ValueError, "n_features and n_columns must be positive");
        goto done;
    }
    Py_ssize_t n_rows = X.len / ((Py_ssize_t)sizeof(float) * n_features);
    if (check(&nodes, sizeof(Node), n_nodes, "nodes") ||
        check(&roots, sizeof(int32_t), n_trees, "roots") ||
        check(&X, sizeof(float), n_rows * n_features, "X") ||
        check(&values, sizeof(double), n_nodes * n_columns, "values") ||
        check(&out, sizeof(double), n_rows * n_columns, "out")) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    walk((const Node *)nodes.buf, (const int32_t *)roots.buf, n_trees, (const float *)X.buf,
         n_rows, n_features, (const double *)values.buf, n_columns, assign_first,
         (double *)out.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&nodes);
    PyBuffer_Release(&roots);
    PyBuffer_Release(&X);
    PyBuffer_Release(&values);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"check_nodes", check_nodes, METH_VARARGS, check_nodes_doc},
    {"sum_leaves", sum_leaves, METH_VARARGS, sum_leaves_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "service.engines._forest",
    .m_doc = "The tree engine's compiled walk: every tree, every row, leaf values summed in order.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__forest(void)
{
    return PyModuleDef_Init(&module);
}
