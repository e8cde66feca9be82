#pragma once
// Files an HLS export carries, compiled into the library from resources/hls (core/CMakeLists.txt
// configures hlsresources.cpp.in): the ap_fixed emulation header and the layer templates.
namespace braggnac::core {
const char *hlsApFixedHeader();   // resources/hls/include/ap_fixed.h
const char *hlsLayerTemplates();  // resources/hls/templates/nnet_layers.h
} // namespace braggnac::core
