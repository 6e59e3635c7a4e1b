# attnc_add_sanitizer_defaults(DIR): adds AsanDefaultOptions.cpp (the ASan
# options every sanitized binary needs; why is in that file) to each
# executable defined in DIR and its subdirectories.
function(attnc_add_sanitizer_defaults dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "EXECUTABLE")
      target_sources(${t} PRIVATE
        ${PROJECT_SOURCE_DIR}/cmake/AsanDefaultOptions.cpp)
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    attnc_add_sanitizer_defaults(${sub})
  endforeach()
endfunction()
