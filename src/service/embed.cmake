# Turns docs/openapi.json into a C array (run at build time): cmake -DIN=... -DOUT=... -P embed.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from docs/openapi.json */\nconst char cn_openapi_json[] = {${bytes} 0};\n")
