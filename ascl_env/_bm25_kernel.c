/* Scoring and top-k selection for the bm25s backend of ascl_env.retrieval, in one C call.
 *
 * An optional accelerator: ascl_env.retrieval falls back to numpy when this module is not built.
 * It reads bm25s's term-major score matrix (indptr, indices, data: for term t, the rules
 * indices[indptr[t]:indptr[t + 1]] score data[...] each) and, for a query given as term numbers
 * (1 + term id; 0 means "no term" and is skipped), adds each term's scores into a float32
 * accumulator in query order -- the additions bm25s's get_scores_from_ids makes, in the same
 * order, so the scores are bit-identical to it -- then returns the k best rules with a positive
 * score, best first, ties broken by the lower rule index.
 *
 * The arrays are checked once when an Index is built (types, shapes, every posting in range)
 * and held read-only for its lifetime; a search touches no shared mutable state and keeps the
 * GIL, so one Index serves many threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    Py_buffer indptr;  /* int64, n_terms + 1 */
    Py_buffer indices; /* int32, nnz */
    Py_buffer data;    /* float32, nnz */
    Py_ssize_t n_terms;
    Py_ssize_t n_docs;
    int held; /* which buffers are held: bit 0 indptr, 1 indices, 2 data */
} IndexObject;

typedef struct {
    float score;
    int32_t doc;
} Candidate;

/* a ranks before b: higher score, then lower rule index */
static inline int
better(float a_score, int32_t a_doc, float b_score, int32_t b_doc)
{
    return a_score > b_score || (a_score == b_score && a_doc < b_doc);
}

static int
compare_candidates(const void *pa, const void *pb)
{
    const Candidate *a = (const Candidate *)pa, *b = (const Candidate *)pb;
    if (better(a->score, a->doc, b->score, b->doc)) return -1;
    if (better(b->score, b->doc, a->score, a->doc)) return 1;
    return 0;
}

static void
Index_dealloc(IndexObject *self)
{
    if (self->held & 1) PyBuffer_Release(&self->indptr);
    if (self->held & 2) PyBuffer_Release(&self->indices);
    if (self->held & 4) PyBuffer_Release(&self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Takes a read-only C-contiguous 1-d buffer of `itemsize`-byte items of struct format `fmt`. */
static int
get_vector(PyObject *obj, Py_buffer *view, const char *name, const char *fmt, Py_ssize_t itemsize)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    const char *got = view->format ? view->format : "B";
    if (got[0] == '<' || got[0] == '=' || got[0] == '@') got++;
    if (view->ndim != 1 || view->itemsize != itemsize || strchr(fmt, got[0]) == NULL ||
        got[1] != '\0') {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a contiguous 1-d array of %zd-byte items of format '%s', got "
                     "format '%s', %d dimension(s)",
                     name, itemsize, fmt, view->format ? view->format : "B", view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int
Index_init(IndexObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"indptr", "indices", "data", "n_docs", NULL};
    PyObject *indptr, *indices, *data;
    Py_ssize_t n_docs;
    if (self->held) {
        PyErr_SetString(PyExc_RuntimeError, "Index is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOn:Index", kwlist, &indptr, &indices, &data,
                                     &n_docs))
        return -1;
    if (n_docs < 0 || n_docs > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "n_docs must be in [0, 2**31 - 1], got %zd", n_docs);
        return -1;
    }
    if (get_vector(indptr, &self->indptr, "indptr", "lq", 8) < 0) goto fail;
    self->held |= 1;
    if (get_vector(indices, &self->indices, "indices", "i", 4) < 0) goto fail;
    self->held |= 2;
    if (get_vector(data, &self->data, "data", "f", 4) < 0) goto fail;
    self->held |= 4;

    Py_ssize_t n_ptr = self->indptr.shape[0], nnz = self->indices.shape[0];
    const int64_t *ptr = (const int64_t *)self->indptr.buf;
    const int32_t *idx = (const int32_t *)self->indices.buf;
    if (n_ptr < 1) {
        PyErr_SetString(PyExc_ValueError, "indptr must have at least one entry");
        goto fail;
    }
    if (self->data.shape[0] != nnz) {
        PyErr_Format(PyExc_ValueError, "indices has %zd entries but data has %zd", nnz,
                     self->data.shape[0]);
        goto fail;
    }
    if (ptr[0] != 0 || ptr[n_ptr - 1] != nnz) {
        PyErr_Format(PyExc_ValueError, "indptr must start at 0 and end at %zd", nnz);
        goto fail;
    }
    for (Py_ssize_t t = 0; t + 1 < n_ptr; t++) {
        if (ptr[t + 1] < ptr[t]) {
            PyErr_Format(PyExc_ValueError, "indptr decreases at position %zd", t + 1);
            goto fail;
        }
    }
    const float *val = (const float *)self->data.buf;
    for (Py_ssize_t j = 0; j < nnz; j++) {
        /* positive scores only: a rule's running score then never returns to zero, so it is
           recorded as touched at most once (the search relies on this) */
        if (!(val[j] > 0.0f) || val[j] == HUGE_VALF) {
            PyErr_Format(PyExc_ValueError, "data[%zd] is not a positive finite score", j);
            goto fail;
        }
        if (idx[j] < 0 || idx[j] >= n_docs) {
            PyErr_Format(PyExc_ValueError, "indices[%zd] = %d is not a rule index in [0, %zd)",
                         j, (int)idx[j], n_docs);
            goto fail;
        }
    }
    self->n_terms = n_ptr - 1;
    self->n_docs = n_docs;
    return 0;

fail:
    if (self->held & 1) PyBuffer_Release(&self->indptr);
    if (self->held & 2) PyBuffer_Release(&self->indices);
    if (self->held & 4) PyBuffer_Release(&self->data);
    self->held = 0;
    return -1;
}

/* Index.top_k(numbers, k) -> list[tuple[int, float]] */
static PyObject *
Index_top_k(IndexObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "top_k expects 2 arguments (numbers, k), got %zd", nargs);
        return NULL;
    }
    if (!self->held) {
        PyErr_SetString(PyExc_RuntimeError, "Index is not initialised");
        return NULL;
    }
    PyObject *numbers = args[0];
    if (!PyList_Check(numbers)) {
        PyErr_Format(PyExc_TypeError, "numbers must be a list of int, got %.100s",
                     Py_TYPE(numbers)->tp_name);
        return NULL;
    }
    /* any integer (numpy's too, via __index__); one beyond Py_ssize_t is clipped to its range */
    Py_ssize_t k = PyNumber_AsSsize_t(args[1], NULL);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (k <= 0) {
        PyErr_Format(PyExc_ValueError, "k must be positive, got %zd", k);
        return NULL;
    }

    const Py_ssize_t n_docs = self->n_docs;
    const int64_t *ptr = (const int64_t *)self->indptr.buf;
    const int32_t *idx = (const int32_t *)self->indices.buf;
    const float *val = (const float *)self->data.buf;

    /* scores of every rule, and the rules given a score, in first-touched order */
    float small_scores[256];
    int32_t small_touched[256];
    float *scores = small_scores;
    int32_t *touched = small_touched;
    Candidate *cand = NULL;
    PyObject *result = NULL;
    if (n_docs > 256) {
        scores = (float *)calloc((size_t)n_docs, sizeof(float));
        touched = (int32_t *)malloc((size_t)n_docs * sizeof(int32_t));
        if (scores == NULL || touched == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    } else {
        memset(small_scores, 0, sizeof(small_scores));
    }

    Py_ssize_t n_touched = 0;
    Py_ssize_t n_numbers = PyList_GET_SIZE(numbers);
    for (Py_ssize_t q = 0; q < n_numbers; q++) {
        PyObject *item = PyList_GET_ITEM(numbers, q);
        if (!PyLong_Check(item)) {
            PyErr_Format(PyExc_TypeError, "numbers[%zd] must be an int, got %.100s", q,
                         Py_TYPE(item)->tp_name);
            goto done;
        }
        Py_ssize_t number = PyLong_AsSsize_t(item);
        if (number == -1 && PyErr_Occurred()) goto done;
        if (number == 0) continue;
        if (number < 0 || number > self->n_terms) {
            PyErr_Format(PyExc_IndexError, "numbers[%zd] = %zd is not a term number in [0, %zd]",
                         q, number, self->n_terms);
            goto done;
        }
        const int64_t end = ptr[number];
        for (int64_t j = ptr[number - 1]; j < end; j++) {
            const int32_t doc = idx[j];
            if (scores[doc] == 0.0f) touched[n_touched++] = doc;
            scores[doc] += val[j];
        }
    }

    /* candidates: the touched rules (every one has a positive score; each is listed once) */
    cand = (Candidate *)malloc((size_t)(n_touched ? n_touched : 1) * sizeof(Candidate));
    if (cand == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n_touched; i++) {
        cand[m].doc = touched[i];
        cand[m].score = scores[touched[i]];
        m++;
    }

    Py_ssize_t n_out = k < m ? k : m;
    if (n_out <= 16 && n_out < m) {
        /* partial selection: keep the n_out best in cand[0:n_out], sorted */
        for (Py_ssize_t i = 0; i < n_out; i++) {
            Py_ssize_t best = i;
            for (Py_ssize_t j = i + 1; j < m; j++)
                if (better(cand[j].score, cand[j].doc, cand[best].score, cand[best].doc)) best = j;
            Candidate tmp = cand[i];
            cand[i] = cand[best];
            cand[best] = tmp;
        }
    } else {
        qsort(cand, (size_t)m, sizeof(Candidate), compare_candidates);
    }

    result = PyList_New(n_out);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n_out; i++) {
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, pair);
        PyObject *doc = PyLong_FromLong((long)cand[i].doc);
        PyObject *score = PyFloat_FromDouble((double)cand[i].score);
        if (doc == NULL || score == NULL) {
            Py_XDECREF(doc);
            Py_XDECREF(score);
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(pair, 0, doc);
        PyTuple_SET_ITEM(pair, 1, score);
    }

done:
    free(cand);
    if (scores != small_scores) free(scores);
    if (touched != small_touched) free(touched);
    return result;
}

/* pickling (and copy.deepcopy) rebuild the Index from the arrays it views */
static PyObject *
Index_reduce(IndexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->held) {
        PyErr_SetString(PyExc_RuntimeError, "Index is not initialised");
        return NULL;
    }
    return Py_BuildValue("(O(OOOn))", (PyObject *)Py_TYPE(self), self->indptr.obj,
                         self->indices.obj, self->data.obj, self->n_docs);
}

static PyObject *
Index_get_n_terms(IndexObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->n_terms);
}

static PyObject *
Index_get_n_docs(IndexObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->n_docs);
}

static PyMethodDef Index_methods[] = {
    {"top_k", (PyCFunction)(void (*)(void))Index_top_k, METH_FASTCALL,
     "top_k(numbers, k) -> list of (rule index, score), best first.\n\n"
     "numbers: a list of term numbers (1 + term id; 0 is skipped), summed in order."},
    {"__reduce__", (PyCFunction)Index_reduce, METH_NOARGS, "pickle support"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Index_getset[] = {
    {"n_terms", (getter)Index_get_n_terms, NULL, "number of terms in the index", NULL},
    {"n_docs", (getter)Index_get_n_docs, NULL, "number of rules in the index", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ascl_env._bm25_kernel.Index",
    .tp_doc = "Index(indptr, indices, data, n_docs): a read-only view of a term-major BM25 "
              "score matrix (int64 indptr, int32 indices, float32 data).",
    .tp_basicsize = sizeof(IndexObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Index_init,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
    .tp_getset = Index_getset,
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ascl_env._bm25_kernel",
    .m_doc = "BM25 scoring and top-k selection for ascl_env.retrieval (optional accelerator).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__bm25_kernel(void)
{
    if (PyType_Ready(&IndexType) < 0) return NULL;
    PyObject *module = PyModule_Create(&kernel_module);
    if (module == NULL) return NULL;
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(module, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
