/* The test double of the transcriber (see fake_transcriber.c). */
#ifndef CN_TESTS_FAKE_TRANSCRIBER_H
#define CN_TESTS_FAKE_TRANSCRIBER_H
#include "service/transcriber.h"
cn_status cn_fake_transcriber_create(cn_transcriber **out, cn_error *err);
#endif
