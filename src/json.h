/* json.h - cJSON helpers whose errors name the file and the field.
 *
 * Every getter takes the file name (for messages) and a field name; a missing
 * field gives ET_ENOTFOUND only for et_json_req_* (required) getters, the
 * et_json_opt_* getters leave *out at the caller's default. A field of the
 * wrong type is always ET_EFORMAT ("config.json: field 'hidden_size': expected
 * a non-negative integer, got string").
 */
#ifndef ET_JSON_H
#define ET_JSON_H

#include <cjson/cJSON.h>

#include "util.h"

/* Parses a whole file (max 1 GiB). Caller frees with cJSON_Delete. */
int et_json_load(cJSON **out, const char *path, et_error *err);
/* Parses a buffer; `what` names it in messages. Caller frees. */
int et_json_parse(cJSON **out, const char *data, size_t len, const char *what, et_error *err);

/* Name of a cJSON value's type for messages ("string", "number", ...). */
const char *et_json_type_name(const cJSON *v);

int et_json_req_obj(const cJSON *o, const char *file, const char *field, const cJSON **out, et_error *err);
int et_json_req_arr(const cJSON *o, const char *file, const char *field, const cJSON **out, et_error *err);
int et_json_req_str(const cJSON *o, const char *file, const char *field, const char **out, et_error *err);
int et_json_req_size(const cJSON *o, const char *file, const char *field, size_t *out, et_error *err);
int et_json_opt_str(const cJSON *o, const char *file, const char *field, const char **out, et_error *err);
int et_json_opt_size(const cJSON *o, const char *file, const char *field, size_t *out, et_error *err);
int et_json_opt_long(const cJSON *o, const char *file, const char *field, long *out, et_error *err);
int et_json_opt_double(const cJSON *o, const char *file, const char *field, double *out, et_error *err);
int et_json_opt_bool(const cJSON *o, const char *file, const char *field, int *out, et_error *err);

/* Integer value check: v is a number holding an exact integer in [min, max]. */
int et_json_as_long(const cJSON *v, long min, long max, long *out);

#endif
