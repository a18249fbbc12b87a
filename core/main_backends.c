/* main_backends: the backends dicom-core is built with (the program's registry). */
#include "main_backends.h"

#include "backend_file/file_backend.h"
#include "forwarder/aws_backend.h"

const struct backend_ops *const g_core_backends[] = {
    &file_backend_ops,
    &aws_backend_ops,
    NULL,
};
