/* The finished-request closure of observe/http.py (`GatewayMetrics.finisher`), in C.
 *
 * Same inputs, same slots, same order of effects as the Python closure `done` there, which
 * stays the reference and the fallback (used when this module is not built, or with
 * WARDGATE_PURE_PYTHON=1); tests/observe/test_finish_accel.py runs both on the same requests
 * and compares every slot. Why C: the closure is ~25 lines of list updates, and in CPython
 * 3.11 they cost ~7,500 instructions per request (bench/instructions.py), the metrics'
 * whole price on the plain route. Nothing here parses client input: it reads attributes
 * the gateway set and adds numbers to the worker's slot list.
 *
 * Finisher(clock, values, rows, bounds, method_index, refused, refusals, observe)
 *   clock        loop.time
 *   values       the registry's slot list (ints, and float seconds for histogram sums)
 *   rows         per route id: (dur[method][status class] -> slot, auth {outcome: slot} |
 *                None, body-in slot, body-out slot, {target url: slot})
 *   bounds       the histogram bucket bounds (seconds, ascending)
 *   method_index {method: index}; unknown methods take the last index (_OTHER)
 *   refused      refused(req, status) for the statuses in `refusals` (a set of ints)
 *   observe      None, or observe(item): the detector's buffer append (detect/adapter.py)
 * called as done(req, status, bytes_in, bytes_out, target, error[, retried]).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#define N_CLASSES 5
#define MAX_METHODS 16
#define MAX_BOUNDS 64
#define N_STATUS 600

typedef struct {
    Py_ssize_t dur[MAX_METHODS][N_CLASSES];
    PyObject *auth;        /* dict, or NULL: the route has no auth */
    Py_ssize_t auth_other;
    Py_ssize_t bytes_in, bytes_out;
    PyObject *targets;     /* dict */
} Row;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *clock, *values, *method_index, *refused, *refusals, *observe;
    Row *rows;
    Py_ssize_t n_rows, n_methods, n_bounds;
    double bounds[MAX_BOUNDS];
    unsigned char refusal[N_STATUS];
} Finisher;

static PyObject *s_start, *s_route, *s_metric_id, *s_method, *s_auth_outcome, *s_observed,
    *s_identity, *s_client_ip, *s_path, *s_headers, *s_params, *s_dash;

static int
slot_check(PyObject *values, Py_ssize_t i)
{
    if (i < 0 || i >= PyList_GET_SIZE(values)) {
        PyErr_SetString(PyExc_IndexError, "metric slot out of range");
        return -1;
    }
    return 0;
}

/* values[i] = new in place of old, an exact int or float (freeing one runs no Python code) */
static int
put(PyObject *values, Py_ssize_t i, PyObject *old, PyObject *new)
{
    if (new == NULL)
        return -1;
    PyList_SET_ITEM(values, i, new);
    Py_DECREF(old);
    return 0;
}

/* values[i] = old + d through the number protocol, for anything else in a slot: that may
   run Python code, so old is held meanwhile and the list written with the checked setter */
static int
add_generic(PyObject *values, Py_ssize_t i, PyObject *old, PyObject *d)
{
    PyObject *new;
    if (d == NULL)
        return -1;
    Py_INCREF(old);
    new = PyNumber_Add(old, d);
    Py_DECREF(old);
    Py_DECREF(d);
    if (new == NULL)
        return -1;
    return PyList_SetItem(values, i, new);  /* steals new; IndexError if the list shrank */
}

/* values[i] += n */
static int
add_int(PyObject *values, Py_ssize_t i, long long n)
{
    PyObject *old;
    if (slot_check(values, i) < 0)
        return -1;
    old = PyList_GET_ITEM(values, i);
    if (PyLong_CheckExact(old)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(old, &overflow);
        if (!overflow && (n >= 0 ? x <= LLONG_MAX - n : x >= LLONG_MIN - n))
            return put(values, i, old, PyLong_FromLongLong(x + n));
    }
    return add_generic(values, i, old, PyLong_FromLongLong(n));
}

/* values[i] += seconds (a histogram's float sum) */
static int
add_float(PyObject *values, Py_ssize_t i, double seconds)
{
    PyObject *old;
    if (slot_check(values, i) < 0)
        return -1;
    old = PyList_GET_ITEM(values, i);
    if (PyFloat_CheckExact(old))
        return put(values, i, old, PyFloat_FromDouble(PyFloat_AS_DOUBLE(old) + seconds));
    return add_generic(values, i, old, PyFloat_FromDouble(seconds));
}

/* a slot number from a dict value (or any int) */
static int
as_slot(PyObject *obj, Py_ssize_t *out)
{
    Py_ssize_t v = PyLong_AsSsize_t(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

static PyObject *
finish(Finisher *self, PyObject *const *args)
{
    PyObject *req = args[0], *status_obj = args[1], *target = args[4];
    PyObject *start_obj = NULL, *route = NULL, *method = NULL, *outcome = NULL;
    PyObject *got, *result = NULL;  /* NULL: an exception is set */
    PyObject *values = self->values;
    double start, seconds = 0.0;
    long status;
    long long bytes_in, bytes_out;
    Py_ssize_t row_id = 0, m, cls, bucket, base, slot;
    Row *row;
    int rc;

    status = PyLong_AsLong(status_obj);
    if (status == -1 && PyErr_Occurred())
        return NULL;
    bytes_in = PyLong_AsLongLong(args[2]);
    if (bytes_in == -1 && PyErr_Occurred())
        return NULL;
    bytes_out = PyLong_AsLongLong(args[3]);
    if (bytes_out == -1 && PyErr_Occurred())
        return NULL;

    start_obj = PyObject_GetAttr(req, s_start);
    if (start_obj == NULL)
        goto done;
    start = PyFloat_AsDouble(start_obj);
    if (start == -1.0 && PyErr_Occurred())
        goto done;
    if (start != 0.0) {
        PyObject *now = PyObject_CallNoArgs(self->clock);
        double t;
        if (now == NULL)
            goto done;
        t = PyFloat_AsDouble(now);
        Py_DECREF(now);
        if (t == -1.0 && PyErr_Occurred())
            goto done;
        seconds = t - start;
    }

    route = PyObject_GetAttr(req, s_route);
    if (route == NULL)
        goto done;
    if (route != Py_None) {
        PyObject *mid = PyObject_GetAttr(route, s_metric_id);
        if (mid == NULL)
            goto done;
        rc = as_slot(mid, &row_id);
        Py_DECREF(mid);
        if (rc < 0)
            goto done;
    }
    if (row_id < 0 || row_id >= self->n_rows) {
        PyErr_SetString(PyExc_IndexError, "route metric id out of range");
        goto done;
    }
    row = &self->rows[row_id];

    method = PyObject_GetAttr(req, s_method);
    if (method == NULL)
        goto done;
    m = self->n_methods - 1;
    got = PyDict_GetItemWithError(self->method_index, method);
    if (got != NULL) {
        if (as_slot(got, &m) < 0)
            goto done;
        if (m < 0 || m >= self->n_methods) {
            PyErr_SetString(PyExc_IndexError, "method index out of range");
            goto done;
        }
    } else if (PyErr_Occurred()) {
        goto done;
    }
    cls = (status >= 100 && status < N_STATUS) ? status / 100 - 1 : N_CLASSES - 1;
    base = row->dur[m][cls];
    for (bucket = 0; bucket < self->n_bounds && self->bounds[bucket] < seconds; bucket++)
        ;
    if (add_int(values, base + bucket, 1) < 0 || add_float(values, base + self->n_bounds + 1, seconds) < 0)
        goto done;

    got = PyDict_GetItemWithError(row->targets, target);
    if (got != NULL) {
        if (as_slot(got, &slot) < 0 || add_int(values, slot + bucket, 1) < 0
                || add_float(values, slot + self->n_bounds + 1, seconds) < 0)
            goto done;
    } else if (PyErr_Occurred()) {
        goto done;
    }

    if (row->auth != NULL) {
        outcome = PyObject_GetAttr(req, s_auth_outcome);
        if (outcome == NULL)
            goto done;
        rc = PyObject_RichCompareBool(outcome, s_dash, Py_NE);
        if (rc < 0)
            goto done;
        if (rc) {
            got = PyDict_GetItemWithError(row->auth, outcome);
            if (got != NULL) {
                if (as_slot(got, &slot) < 0)
                    goto done;
            } else if (PyErr_Occurred()) {
                goto done;
            } else {
                slot = row->auth_other;
            }
            if (add_int(values, slot, 1) < 0)
                goto done;
        }
    }
    if (bytes_in && add_int(values, row->bytes_in, bytes_in) < 0)
        goto done;
    if (bytes_out && add_int(values, row->bytes_out, bytes_out) < 0)
        goto done;

    rc = (status >= 0 && status < N_STATUS) ? self->refusal[status]
                                            : PySet_Contains(self->refusals, status_obj);
    if (rc < 0)
        goto done;
    if (rc) {
        PyObject *r = PyObject_CallFunctionObjArgs(self->refused, req, status_obj, NULL);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }

    if (self->observe != Py_None && route != Py_None) {
        PyObject *flag = PyObject_GetAttr(route, s_observed);
        if (flag == NULL)
            goto done;
        rc = PyObject_IsTrue(flag);
        Py_DECREF(flag);
        if (rc < 0)
            goto done;
        if (rc) {
            /* detect/adapter.py's item: (route, identity, client_ip, method, path,
               auth_outcome, status, headers, params, start, response bytes) */
            PyObject *names[5] = {s_identity, s_client_ip, s_path, s_headers, s_params};
            PyObject *vals[5] = {NULL, NULL, NULL, NULL, NULL};
            PyObject *item = NULL, *r = NULL;
            int i;
            for (i = 0; i < 5; i++)
                if ((vals[i] = PyObject_GetAttr(req, names[i])) == NULL)
                    break;
            if (i == 5 && outcome == NULL)
                outcome = PyObject_GetAttr(req, s_auth_outcome);
            if (i == 5 && outcome != NULL)
                item = PyTuple_Pack(11, route, vals[0], vals[1], method, vals[2], outcome,
                                    status_obj, vals[3], vals[4], start_obj, args[3]);
            for (i = 0; i < 5; i++)
                Py_XDECREF(vals[i]);
            if (item != NULL) {
                r = PyObject_CallOneArg(self->observe, item);
                Py_DECREF(item);
            }
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(start_obj);
    Py_XDECREF(route);
    Py_XDECREF(method);
    Py_XDECREF(outcome);
    return result;
}

static PyObject *
fin_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "the finisher takes positional arguments only");
        return NULL;
    }
    if (nargs < 6 || nargs > 7) {
        PyErr_Format(PyExc_TypeError, "the finisher takes 6 or 7 arguments (%zd given)", nargs);
        return NULL;
    }
    return finish((Finisher *)self, args);
}

static void
free_rows(Finisher *self)
{
    Py_ssize_t i;
    if (self->rows == NULL)
        return;
    for (i = 0; i < self->n_rows; i++) {
        Py_XDECREF(self->rows[i].auth);
        Py_XDECREF(self->rows[i].targets);
    }
    PyMem_Free(self->rows);
    self->rows = NULL;
    self->n_rows = 0;
}

static int
load_row(Finisher *self, Row *row, PyObject *spec)
{
    PyObject *dur, *auth, *targets, *other;
    Py_ssize_t m, c;
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 5) {
        PyErr_SetString(PyExc_TypeError, "a row is (dur, auth, bytes_in, bytes_out, targets)");
        return -1;
    }
    dur = PyTuple_GET_ITEM(spec, 0);
    if (!PyList_Check(dur) || PyList_GET_SIZE(dur) != self->n_methods) {
        PyErr_SetString(PyExc_ValueError, "every row needs one list per method");
        return -1;
    }
    for (m = 0; m < self->n_methods; m++) {
        PyObject *per = PyList_GET_ITEM(dur, m);
        if (!PyList_Check(per) || PyList_GET_SIZE(per) != N_CLASSES) {
            PyErr_SetString(PyExc_ValueError, "every method needs one slot per status class");
            return -1;
        }
        for (c = 0; c < N_CLASSES; c++)
            if (as_slot(PyList_GET_ITEM(per, c), &row->dur[m][c]) < 0)
                return -1;
    }
    auth = PyTuple_GET_ITEM(spec, 1);
    if (auth != Py_None) {
        if (!PyDict_Check(auth)) {
            PyErr_SetString(PyExc_TypeError, "auth slots must be a dict or None");
            return -1;
        }
        other = PyDict_GetItemString(auth, "other");
        if (other == NULL) {
            PyErr_SetString(PyExc_ValueError, "auth slots need an 'other' outcome");
            return -1;
        }
        if (as_slot(other, &row->auth_other) < 0)
            return -1;
        Py_INCREF(auth);
        row->auth = auth;
    }
    if (as_slot(PyTuple_GET_ITEM(spec, 2), &row->bytes_in) < 0
            || as_slot(PyTuple_GET_ITEM(spec, 3), &row->bytes_out) < 0)
        return -1;
    targets = PyTuple_GET_ITEM(spec, 4);
    if (!PyDict_Check(targets)) {
        PyErr_SetString(PyExc_TypeError, "target slots must be a dict");
        return -1;
    }
    Py_INCREF(targets);
    row->targets = targets;
    return 0;
}

static PyObject *
fin_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *clock, *values, *rows, *bounds, *method_index, *refused, *refusals, *observe;
    Finisher *self;
    Py_ssize_t i;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Finisher takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!O!OO!OOO:Finisher", &clock, &PyList_Type, &values,
                          &PyList_Type, &rows, &bounds, &PyDict_Type, &method_index,
                          &refused, &refusals, &observe))
        return NULL;
    if (!PyAnySet_Check(refusals)) {
        PyErr_SetString(PyExc_TypeError, "refusals must be a set");
        return NULL;
    }
    self = (Finisher *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = fin_vectorcall;
    Py_INCREF(clock); self->clock = clock;
    Py_INCREF(values); self->values = values;
    Py_INCREF(method_index); self->method_index = method_index;
    Py_INCREF(refused); self->refused = refused;
    Py_INCREF(refusals); self->refusals = refusals;
    Py_INCREF(observe); self->observe = observe;

    {
        PyObject *seq = PySequence_Fast(bounds, "bounds must be a sequence");
        if (seq == NULL)
            goto error;
        self->n_bounds = PySequence_Fast_GET_SIZE(seq);
        if (self->n_bounds > MAX_BOUNDS) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "too many histogram bounds");
            goto error;
        }
        for (i = 0; i < self->n_bounds; i++) {
            self->bounds[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
            if (self->bounds[i] == -1.0 && PyErr_Occurred()) {
                Py_DECREF(seq);
                goto error;
            }
        }
        Py_DECREF(seq);
    }
    for (i = 0; i < N_STATUS; i++) {
        PyObject *s = PyLong_FromSsize_t(i);
        int rc;
        if (s == NULL)
            goto error;
        rc = PySet_Contains(refusals, s);
        Py_DECREF(s);
        if (rc < 0)
            goto error;
        self->refusal[i] = (unsigned char)rc;
    }
    self->n_methods = 0;
    if (PyList_GET_SIZE(rows) == 0) {
        PyErr_SetString(PyExc_ValueError, "no rows");
        goto error;
    }
    {
        PyObject *first = PyList_GET_ITEM(rows, 0);
        if (!PyTuple_Check(first) || PyTuple_GET_SIZE(first) != 5
                || !PyList_Check(PyTuple_GET_ITEM(first, 0))) {
            PyErr_SetString(PyExc_TypeError, "a row is (dur, auth, bytes_in, bytes_out, targets)");
            goto error;
        }
        self->n_methods = PyList_GET_SIZE(PyTuple_GET_ITEM(first, 0));
        if (self->n_methods < 1 || self->n_methods > MAX_METHODS) {
            PyErr_SetString(PyExc_ValueError, "unsupported number of methods");
            goto error;
        }
    }
    self->rows = PyMem_Calloc((size_t)PyList_GET_SIZE(rows), sizeof(Row));
    if (self->rows == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    self->n_rows = PyList_GET_SIZE(rows);
    for (i = 0; i < self->n_rows; i++)
        if (load_row(self, &self->rows[i], PyList_GET_ITEM(rows, i)) < 0)
            goto error;
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

static int
fin_traverse(Finisher *self, visitproc visit, void *arg)
{
    Py_ssize_t i;
    Py_VISIT(self->clock);
    Py_VISIT(self->values);
    Py_VISIT(self->method_index);
    Py_VISIT(self->refused);
    Py_VISIT(self->refusals);
    Py_VISIT(self->observe);
    for (i = 0; self->rows != NULL && i < self->n_rows; i++) {
        Py_VISIT(self->rows[i].auth);
        Py_VISIT(self->rows[i].targets);
    }
    return 0;
}

static int
fin_clear(Finisher *self)
{
    Py_CLEAR(self->clock);
    Py_CLEAR(self->values);
    Py_CLEAR(self->method_index);
    Py_CLEAR(self->refused);
    Py_CLEAR(self->refusals);
    Py_CLEAR(self->observe);
    free_rows(self);
    return 0;
}

static void
fin_dealloc(Finisher *self)
{
    PyObject_GC_UnTrack(self);
    fin_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject FinisherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wardgate.observe._finish.Finisher",
    .tp_basicsize = sizeof(Finisher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "The finished-request metrics update of observe/http.py, in C.",
    .tp_new = fin_new,
    .tp_dealloc = (destructor)fin_dealloc,
    .tp_traverse = (traverseproc)fin_traverse,
    .tp_clear = (inquiry)fin_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Finisher, vectorcall),
};

static struct PyModuleDef finish_module = {
    PyModuleDef_HEAD_INIT, "_finish", "The metrics closure of observe/http.py, in C.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__finish(void)
{
    PyObject *mod;
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(s_start, "start");
    INTERN(s_route, "route");
    INTERN(s_metric_id, "metric_id");
    INTERN(s_method, "method");
    INTERN(s_auth_outcome, "auth_outcome");
    INTERN(s_observed, "observed");
    INTERN(s_identity, "identity");
    INTERN(s_client_ip, "client_ip");
    INTERN(s_path, "path");
    INTERN(s_headers, "headers");
    INTERN(s_params, "params");
    INTERN(s_dash, "-");
#undef INTERN
    if (PyType_Ready(&FinisherType) < 0)
        return NULL;
    mod = PyModule_Create(&finish_module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&FinisherType);
    if (PyModule_AddObject(mod, "Finisher", (PyObject *)&FinisherType) < 0) {
        Py_DECREF(&FinisherType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
