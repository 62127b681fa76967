/* mime.c -- the extension table. Engineering formats first; the rest are what a file share of
 * an engineering team usually holds. Matching is case-insensitive on the last extension. */
#include "mime.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *ext, *type;
} table[] = {
    {"", "application/octet-stream"}, /* index 0: unknown */
    {"pdf", "application/pdf"},
    {"dxf", "image/vnd.dxf"},
    {"dwg", "image/vnd.dwg"},
    {"step", "model/step"},
    {"stp", "model/step"},
    {"iges", "model/iges"},
    {"igs", "model/iges"},
    {"stl", "model/stl"},
    {"obj", "model/obj"},
    {"3mf", "model/3mf"},
    {"gcode", "text/x-gcode"},
    {"nc", "text/x-gcode"},
    {"csv", "text/csv"},
    {"tsv", "text/tab-separated-values"},
    {"txt", "text/plain"},
    {"md", "text/markdown"},
    {"json", "application/json"},
    {"xml", "application/xml"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"webp", "image/webp"},
    {"zip", "application/zip"},
    {"7z", "application/x-7z-compressed"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"xls", "application/vnd.ms-excel"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"doc", "application/msword"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"odt", "application/vnd.oasis.opendocument.text"},
    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
    {"mp4", "video/mp4"},
};

uint8_t mime_index(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || !dot[1])
        return 0;
    for (unsigned i = 1; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(dot + 1, table[i].ext) == 0)
            return (uint8_t)i;
    return 0;
}

const char *mime_type(uint8_t idx)
{
    return idx < sizeof table / sizeof table[0] ? table[idx].type : table[0].type;
}
