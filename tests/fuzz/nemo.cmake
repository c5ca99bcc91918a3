# .nemo loader harnesses: tar container, torch.save zip + tensor views, state-dict pickle,
# SentencePiece model (+ decode/encode/prompt on it), model_config.yaml.
canary_fuzzer(fuzz_tar SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_tar.c LIBS cn_nemo)
canary_fuzzer(fuzz_zip SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_zip.c LIBS cn_nemo)
canary_fuzzer(fuzz_pickle SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_pickle.c LIBS cn_nemo)
canary_fuzzer(fuzz_spm SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_spm.c LIBS cn_nemo)
canary_fuzzer(fuzz_model_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_model_config.c LIBS cn_nemo)
